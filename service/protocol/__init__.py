"""The Open Inference Protocol (KServe "v2") with the binary tensor extension, without HTTP.

``datatypes`` maps the protocol's datatypes to NumPy, ``request`` decodes an inference request
body (JSON and binary framing), ``models`` maps a loss to a protocol model (its metadata, inputs
and outputs), ``response`` encodes an inference response, and ``infer`` runs the whole exchange
against the data plane. None of them imports FastAPI: ``service.api.v2`` only reads the body
and headers and hands them here, in a worker thread.
"""
