"""The benchmarks' output: one table of (measure, value) rows."""


def print_table(rows):
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  value")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
