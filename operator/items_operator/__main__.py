from items_operator.main import main

main()
