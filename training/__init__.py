"""Training recipes over TRL: SFT, GRPO (plain and TIR-aware), DPO, merging."""
