from hoard.cli import main

main()
