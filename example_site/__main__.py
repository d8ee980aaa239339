from example_site.run import main

main()
