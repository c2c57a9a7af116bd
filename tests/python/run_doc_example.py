"""Runs the example of a Markdown page as written: every ```python block between the
<!-- example --> and <!-- /example --> markers, in order, in one namespace, with the working
directory set to $ARGENT_TORCH_WORK (the index of the torch_ops_python fixture is `index/`,
its queries `data/queries.npy`). Fails on any exception, or when the page has no example.
    run_doc_example.py docs/torch.md
"""
import os
import re
import sys


def example_blocks(text):
    m = re.search(r"<!-- example -->(.*?)<!-- /example -->", text, re.S)
    if not m:
        raise SystemExit("no <!-- example --> section")
    blocks = re.findall(r"```python\n(.*?)```", m.group(1), re.S)
    if not blocks:
        raise SystemExit("the example section has no ```python block")
    return blocks


def main():
    page = os.path.abspath(sys.argv[1])
    with open(page) as f:
        blocks = example_blocks(f.read())
    if os.environ.get("ARGENT_TORCH_OPS"):  # relative to where we were started
        os.environ["ARGENT_TORCH_OPS"] = os.path.abspath(os.environ["ARGENT_TORCH_OPS"])
    os.chdir(os.environ["ARGENT_TORCH_WORK"])
    namespace = {"__name__": "__example__"}
    for i, code in enumerate(blocks):
        print(f"--- block {i + 1} of {len(blocks)}", flush=True)
        exec(compile(code, f"{page} (python block {i + 1})", "exec"), namespace)


if __name__ == "__main__":
    main()
