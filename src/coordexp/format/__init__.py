"""The format core every stage, inference and evaluation share (imports nothing else of coordexp):

- ``coord``: the ``<|coord_k|>`` vocabulary, norm1000 bins, the tokenizer with the coord tokens;
- ``coordjson``: CoordJSON, the model's output text (render, strict parse, transpile to JSON);
- ``prompts``: the fixed dense-detection prompts;
- ``template``: the Qwen3-VL chat rendering, label masks and the pre-resized image grid;
- ``data``: the JSONL record contract (parse, validate, load), object ordering and sampling.
"""
