from pipeline.tracking.cli import main

main()
