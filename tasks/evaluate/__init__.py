"""The evaluate stage (``stage``) and what it alone uses: ``answers`` (and ``answers_vllm``)
from base and tuned, reference ``metrics``, the teacher's answer ``grader`` and ``grading``
over an eval set, failure ``errors``, bootstrap ``intervals``, per-probe ``probes``, the
general-ability ``regression`` check, the ``report`` files and the answer ``cache``."""
