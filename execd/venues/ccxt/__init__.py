"""The live plane: real exchanges through ccxt."""
