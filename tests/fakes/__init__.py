"""Local fake servers that speak the providers' real wire formats on 127.0.0.1."""
