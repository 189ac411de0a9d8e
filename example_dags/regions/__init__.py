"""The per-region training example (region_training.aq.yaml): one small churn model per region,
then the region model with the best holdout AUC. numpy and pyarrow only, so each step starts fast."""
