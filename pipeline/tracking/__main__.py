from pipeline.tracking.resync import main

main()
