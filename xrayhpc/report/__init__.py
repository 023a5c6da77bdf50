"""The study's answer from the result folders: `python -m xrayhpc.report`, `make report`.

Writes results/report.md, a self-contained results/report.html (images inlined),
results/accuracy.png and results/timing.png, and prints the tables. Experiments still running or
failed are listed with their state; a damaged metrics.json or one of an unknown schema is named in
one line and left out. Reads result folders and asks the cluster side only for live state.

    results    the complete results, read from the result folders
    controls   random-weight and file-facts controls, and each task's sentence
    compare    what stands beside what: published figures (like for like), seeds, devices
    tables     every table as text, its wide columns marked for the files only
    charts     accuracy with its interval, time per phase on each device
    writers    Markdown, self-contained HTML, the terminal
    build      the sections, once for every format
    live       the page while jobs run: counts, running rows with their curves, failures
    watch      `--watch`: the live page rewritten until every experiment has ended
    cli        the command
"""
