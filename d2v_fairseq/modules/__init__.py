"""Plain PyTorch building blocks of data2vec; nothing here touches fairseq's registries."""
