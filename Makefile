build-PipelineLayer:
	mkdir -p "$(ARTIFACTS_DIR)/python"
	rsync -a --exclude local --exclude __pycache__ pipeline "$(ARTIFACTS_DIR)/python/"
	python3.12 -m pip install --quiet --no-compile --only-binary=:all: --platform manylinux2014_x86_64 --implementation cp --python-version 3.12 -r lambdas/requirements.txt -t "$(ARTIFACTS_DIR)/python"
