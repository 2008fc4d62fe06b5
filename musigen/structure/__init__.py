"""Song structure of a recording: sections found by self-similarity (no training).

    sections   audio -> [(start, end, label)] with intro / verse / chorus / bridge / outro
    evaluate   boundary hit rate against reference sections (mir_eval.segment)
"""
