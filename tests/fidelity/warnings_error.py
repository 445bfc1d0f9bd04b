# Warnings turned into errors.
import warnings

warnings.simplefilter("error")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    warnings.warn("recorded")
print("recorded:", [str(w.message) for w in caught])
warnings.warn("now an error", UserWarning)
