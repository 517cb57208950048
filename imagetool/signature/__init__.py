"""Image signatures: simple signing (OpenPGP), sigstore keys, and the trust policy that checks them.

Entry points: `policy_eval.PolicyContext` (what copy and verify call before trusting a source)
and `signers.make_signers` (what copy calls to sign what it writes).
"""
