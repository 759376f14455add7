from fastmoe_cfg.cli import main

main()
