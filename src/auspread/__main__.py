from auspread.cli import main

main()
