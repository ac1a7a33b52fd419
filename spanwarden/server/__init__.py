"""The server layer both runtimes stand on (`serve` and `serve --kafka`): the state directory's lock, the
listening socket, and what every HTTP app of spanwarden answers alike."""
