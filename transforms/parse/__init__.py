"""Pure page parsers: a page's wikitext or Parsoid HTML in, plain facts out (no Beam, no I/O)."""
