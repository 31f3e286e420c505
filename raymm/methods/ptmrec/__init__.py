"""PTMRec (Zhang, Luo, Zhang and Fang, "Bridging Domain Gaps between Pretrained Multimodal Models and
Recommendations", arXiv 2502.15542; spec ``../shared/docs/methods.md``, "PTMRec"): a pre-trained
text encoder tuned with a PEFT adapter under guidance from a recommender.

Built so far (issue 12, in progress; the method is not registered yet): the tunable encoder
(:mod:`raymm.models.text_encoder`), the knowledge-transfer loss (:mod:`.losses`) and the
item-embedding cache (:mod:`.cache`). The stages, the config section and the jobs come next."""
