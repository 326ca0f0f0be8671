from opsdeck.cli import main

main(prog_name="opsdeck")
