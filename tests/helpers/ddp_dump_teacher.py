"""d2v train (launch.hydra_train) under torchrun that also saves each rank's teacher and student when
fairseq saves a checkpoint (fairseq itself writes checkpoints on rank 0 only).

    torchrun --nproc_per_node 2 ddp_dump_teacher.py DUMP_DIR [fairseq-hydra-train args...]
"""

import os
import sys

import torch
from fairseq import checkpoint_utils

from d2v_fairseq.launch import hydra_train

DUMP_DIR = sys.argv.pop(1)
_save = checkpoint_utils.save_checkpoint


def save_and_dump(cfg, trainer, epoch_itr, val_loss):
    model = trainer.get_model()
    torch.save(
        {"teacher": model.teacher.state_dict(), "student": model.state_dict(), "num_updates": trainer.get_num_updates()},
        os.path.join(DUMP_DIR, f"rank{os.environ['RANK']}.pt"),
    )
    return _save(cfg, trainer, epoch_itr, val_loss)


checkpoint_utils.save_checkpoint = save_and_dump

if __name__ == "__main__":
    hydra_train()
