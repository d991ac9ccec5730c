from prsm_events.cli import main

main()
