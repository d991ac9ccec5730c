from prsm_events.cli.main import main

main()
