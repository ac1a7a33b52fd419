from spanwarden.cli import main

main()
