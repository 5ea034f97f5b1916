"""The worker Job: its request, its spec and hash, what an observed Job says, and when to run the next."""
