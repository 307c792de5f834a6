"""Command-line entry points: each module builds a parser and a ``main(argv)``; console scripts call them."""
