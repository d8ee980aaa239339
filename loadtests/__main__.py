from loadtests.run import main

main()
