from grader.worker.loop import main

main()
