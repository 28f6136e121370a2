"""The languages Argo Events manifests are written in, re-implemented over Python values.

Sensors ported from Argo Events carry gjson paths (`paths`), sjson destinations (`dests`), Go
`text/template` with sprig (`templates`, `template_lexing`, `template_parsing`, `sprig`,
`govalues`) and govaluate expressions (`expressions`, `expression_parsing`). Each is pure: no
I/O, no `eval` of user text, errors as `tripwire.errors.ExpressionError` with the position.
"""
