"""Demo corpora and the demo pipelines (``d2v demo ...``): pre-trained vs random init."""
