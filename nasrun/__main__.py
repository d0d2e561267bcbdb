from nasrun.commands.search import main

main()
