// Placeholder module: being written; exports nothing yet.
