"""One colour per cell, for every figure: a cell keeps its colour whichever cells a figure shows."""
CELL_COLORS = {"vanilla": "C0", "gru": "C1", "tanh": "C2", "lstm": "C3", "mgu": "C4"}
OTHER = "C7"


def cell_color(cell: str) -> str:
    return CELL_COLORS.get(cell, OTHER)
