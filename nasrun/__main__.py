from nasrun.cli import main

main()
