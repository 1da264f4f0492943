"""`make bench`: every benchmark in turn."""

from bench import tokens

if __name__ == "__main__":
    tokens.main()
