"""The Megatron-LM paper, whose zero-shot evaluations the language-model metrics follow. Each of those metric folders
carries this file (a symlink), because `evaluate.load(path)` copies a metric script with the files it imports from its
own folder."""

MEGATRON_CITATION = """\
@article{shoeybi2019megatron,
  title={Megatron-LM: Training Multi-Billion Parameter Language Models Using Model Parallelism},
  author={Shoeybi, Mohammad and Patwary, Mostofa and Puri, Raul and LeGresley, Patrick and Casper, Jared and
          Catanzaro, Bryan},
  journal={arXiv preprint arXiv:1909.08053},
  year={2019}
}
"""
