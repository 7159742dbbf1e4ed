# Relais — top-level entry points. `make run` and `make test` set everything up on Debian 12.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
CONFIG ?= examples/office/relais.lua

# Debian packages the project needs to build, run and test. `make deps` installs the missing ones.
DEPS := build-essential cmake pkg-config libsofia-sip-ua-dev libluajit-5.1-dev libevent-dev \
        libhiredis-dev libsqlite3-dev libssl-dev nlohmann-json3-dev doctest-dev \
        libjemalloc-dev sip-tester baresip-core redis-server kamailio rtpengine-daemon tshark \
        sox python3 sqlite3 libsndfile1-dev libspandsp-dev espeak-ng libcurl4-openssl-dev \
        libsrtp2-dev liburing-dev kamailio-tls-modules libxdp-dev libbpf-dev

.PHONY: all deps build run test bench clean sanitize

all: build

deps:
	@missing=$$(for p in $(DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: all present"; fi

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

# The address phones send RTP to: 127.0.0.1 for a softphone on this machine, the LAN address
# for desk phones (make run MEDIA_ADDRESS=192.168.1.10).
MEDIA_ADDRESS ?= 127.0.0.1

# SIP over TLS on 5061 with the development certificates (tls/make-dev-certs.sh, var/tls). Give
# TLS_SETS= to run without TLS, or your own --set tls.* options.
TLS_SETS ?= --set tls.listen=tls:0.0.0.0:5061 --set tls.certificate=var/tls/server.pem \
            --set tls.private_key=var/tls/server.key --set tls.ca=var/tls/ca.pem

run: build
	mkdir -p var
	@[ -s var/tls/server.pem ] || bash tls/make-dev-certs.sh var/tls
	@./$(BUILD)/relais-media --ng 127.0.0.1:2223 --address $(MEDIA_ADDRESS) --ports 30000-30999 & \
	media=$$!; trap 'kill $$media 2>/dev/null' EXIT INT TERM; \
	./$(BUILD)/relais --config $(CONFIG) $(TLS_SETS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j 2

bench: build
	python3 tests/bench/register.py

sanitize:
	$(MAKE) test BUILD=build-asan CMAKE_FLAGS=-DRELAIS_SANITIZE=ON

clean:
	rm -rf $(BUILD) build-asan
