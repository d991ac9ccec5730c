from prsm_events.operations.group_views import merged_budgets, why_not_whole


def answer(generation: int, partitions: list[int], *budgets: dict) -> dict:
    return {"generation": generation, "partitions": partitions, "budgets": list(budgets)}


def tenant(name: str, spent: float) -> dict:
    return {"key": f"tenant:{name}|day", "spent_usd": spent, "allotment_usd": None,
            "partitions": None}


def whole(spent: float, *parts: tuple[int, float]) -> dict:
    return {"key": "global|day", "spent_usd": spent,
            "allotment_usd": sum(a for _, a in parts),
            "partitions": [{"partition": p, "allotment_usd": a, "taken_usd": 0.0}
                           for p, a in parts]}


def test_answers_of_one_generation_holding_each_partition_once_are_whole():
    assert why_not_whole([answer(3, [0, 2]), answer(3, [1, 3])], 4) is None
    assert why_not_whole([answer(3, [0, 1, 2, 3])], 4) is None
    assert why_not_whole([answer(3, [0, 1, 2, 3]), answer(3, [])], 4) is None  # an idle one


def test_answers_are_not_whole_during_a_rebalance_or_with_a_worker_missing():
    rebalancing = {"error": "rebalancing: ask again shortly"}
    assert why_not_whole([answer(3, [0, 1]), rebalancing], 4) == rebalancing["error"]
    assert "generations 3, 4" in why_not_whole([answer(3, [0, 1]), answer(4, [2, 3])], 4)
    assert "own partitions [0, 1], not each of the group's 4 once" in why_not_whole(
        [answer(3, [0, 1])], 4)
    assert "own partitions [0, 1, 1, 2, 3]" in why_not_whole(
        [answer(3, [0, 1]), answer(3, [1, 2, 3])], 4)  # a partition twice
    unreachable = {"error": "the worker of the group at http://h:1 does not answer (refused)"}
    assert why_not_whole([answer(3, [0, 1, 2, 3]), unreachable], 4) == unreachable["error"]


def test_each_budget_once_tenants_from_their_owner_the_global_from_partition_zeros():
    first = answer(5, [1, 3], tenant("b", 2.0), whole(9.5, (1, 2.0), (3, 1.0)))
    second = answer(5, [0, 2], tenant("a", 1.0), tenant("c", 0.5),
                    whole(9.75, (0, 4.0), (2, 3.0)))
    rows = merged_budgets([first, second])
    assert [r["key"] for r in rows] == ["global|day", "tenant:a|day", "tenant:b|day",
                                        "tenant:c|day"]
    glob = rows[0]
    assert glob["spent_usd"] == 9.75  # as the owner of partition 0 knows it
    assert [p["partition"] for p in glob["partitions"]] == [0, 1, 2, 3]
    assert glob["allotment_usd"] == 10.0
    assert [r["spent_usd"] for r in rows[1:]] == [1.0, 2.0, 0.5]
    assert rows[1]["partitions"] is None and rows[1]["allotment_usd"] is None
    # the answers are left as they were
    assert [p["partition"] for p in second["budgets"][2]["partitions"]] == [0, 2]
