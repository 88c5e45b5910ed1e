// Being written; exports nothing yet.
export {};
