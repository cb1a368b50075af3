# `sam build` (BuildMethod: makefile in template.yaml) runs build-RetagFunction with ARTIFACTS_DIR
# set: the arm64 bootstrap, built by cargo-lambda, and the rule file the function reads
# (RETAG_RULES_FILE=rules.json, relative to the package). Another rule file: RULES=FILE sam build.
RULES ?= rules.json
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)

# sam build shows the build's standard output as it comes and its standard error only when it
# fails: cargo's progress goes to standard output, so that the minutes of a first build show.
build-RetagFunction:
	@echo "Building the arm64 bootstrap (cargo lambda build --release --arm64 --bin bootstrap; the first build takes several minutes)"
	cargo lambda build --release --arm64 --bin bootstrap 2>&1
	cp "$(TARGET_DIR)/lambda/bootstrap/bootstrap" "$(ARTIFACTS_DIR)/bootstrap"
	cp "$(RULES)" "$(ARTIFACTS_DIR)/rules.json"

.PHONY: build-RetagFunction
