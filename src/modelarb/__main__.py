"""`python -m modelarb`: the command line."""

from modelarb.cli import main

main()
