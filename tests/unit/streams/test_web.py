from prsm_events.accounting.spend import SpendRow
from streams.web import budgets_answer, group_answer, spend_answer


def row(cost: float, events: int, partition: int) -> list[float | int]:
    return SpendRow(cost, events, events * 10, events, partition=partition, offset=5).to_list()


STORE = {
    "tenant:a|total|all": row(3.0, 3, partition=0),
    "tenant:a|day|2026-01-01T00:00:00Z": row(1.0, 1, partition=0),
    "tenant:a/model:m|total|all": row(3.0, 3, partition=0),
    "tenant:b|total|all": row(5.0, 5, partition=1),  # moved to another worker: left out
    "tenant:c|total|all": row(2.0, 2, partition=2),
}


def test_spend_answers_the_rows_of_its_partitions_with_them_and_their_generation():
    body, status = spend_answer(STORE, None, "total", frozenset({2, 0}), 7)
    assert status == 200
    assert body["partitions"] == [0, 2] and body["generation"] == 7
    assert [(r["scope"], r["events"], r["cost_usd"]) for r in body["rows"]] == [
        ("tenant:a", 3, 3.0), ("tenant:a/model:m", 3, 3.0), ("tenant:c", 2, 2.0)]
    scoped, _ = spend_answer(STORE, "tenant:a", None, frozenset({0}), 7)
    assert [(r["window"], r["start"]) for r in scoped["rows"]] == [
        ("day", "2026-01-01T00:00:00Z"), ("total", "all")]


def test_spend_answers_503_and_no_rows_while_a_rebalance_or_recovery_runs():
    body, status = spend_answer(STORE, None, None, None, 7)
    assert status == 503
    assert "rows" not in body and "rebalancing" in body["error"]


def test_budgets_answers_its_figures_partitions_and_generation():
    read = []

    def figures() -> list[dict]:
        read.append(1)
        return [{"key": "tenant:a|day", "spent_usd": 1.5}]

    body, status = budgets_answer(figures, frozenset({2, 0}), 9)
    assert status == 200 and read == [1]
    assert body == {"budgets": [{"key": "tenant:a|day", "spent_usd": 1.5}],
                    "partitions": [0, 2], "generation": 9}


def test_group_answers_partitions_generation_workers_and_whether_it_runs_the_sink():
    workers = [{"url": "http://127.0.0.1:6067", "partitions": [0, 2]},
               {"url": "http://127.0.0.1:6068", "partitions": [1]}]
    assert group_answer(frozenset({0, 2}), 9, workers, False) == (
        {"partitions": [0, 2], "generation": 9, "workers": workers, "sink": False}, 200)
    body, status = group_answer(None, 9, [], True)
    assert status == 503 and "workers" not in body and "rebalancing" in body["error"]


def test_budgets_answers_503_without_reading_the_ledger_while_a_rebalance_runs():
    def figures() -> list[dict]:
        raise AssertionError("the ledger is not read during a rebalance")

    body, status = budgets_answer(figures, None, 9)
    assert status == 503
    assert "budgets" not in body and "rebalancing" in body["error"]
