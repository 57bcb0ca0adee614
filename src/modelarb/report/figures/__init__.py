"""One module per experiment: its figure and explanation as a report `Section`."""
