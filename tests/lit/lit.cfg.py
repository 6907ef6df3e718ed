# lit configuration for Tessera's FileCheck tests.
import os
import lit.formats

config.name = "Tessera"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".tsr", ".mlir", ".test"]
config.excludes = ["Inputs", "lit.cfg.py", "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.tessera_obj_root, "tests", "lit")

config.environment["PATH"] = os.pathsep.join(
    [config.tessera_tools_dir, config.llvm_tools_dir, config.environment.get("PATH", "")])
# Diagnostics must not depend on the user's environment.
for var in ["TESSERA_PATH", "TESSERA_STDLIB"]:
    config.environment.pop(var, None)

config.substitutions.append(("%python", "/usr/bin/python3"))
config.substitutions.append(("%llvmlibdir", os.path.join(os.path.dirname(config.llvm_tools_dir), "lib")))
config.substitutions.append(("%tessera_bindir", config.tessera_tools_dir))
config.substitutions.append(("%tessera", os.path.join(config.tessera_tools_dir, "tessera")))
config.substitutions.append(("%stdlib", os.path.join(config.tessera_src_root, "stdlib")))
config.substitutions.append(("%examples", os.path.join(config.tessera_src_root, "examples")))

# ptxas (CUDA toolkit) assembles the PTX tests' output when it is installed.
ptxas = os.environ.get("PTXAS", "/usr/local/cuda/bin/ptxas")
if os.access(ptxas, os.X_OK):
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", ptxas))
    config.substitutions.append(("%cuda_root", os.path.dirname(os.path.dirname(ptxas))))
