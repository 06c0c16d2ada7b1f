"""``hybridssl finetune``: an exported backbone plus a task head, trained on your labels."""
