// xdp_program.cpp — building, loading and attaching relais-media's XDP program.
//
// The program is a few dozen instructions, assembled here rather than compiled from C with
// clang at build time: no BPF toolchain, no object file to install, and the relay address is an
// immediate of the program instead of a map lookup.
#include "xdp_program.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

namespace relais::media {

namespace {

// A minimal BPF assembler: the instructions the program needs, and forward jumps to one label.
class Assembler {
 public:
  void ldx(int size, int dst, int src, int16_t off) { emit(BPF_LDX | BPF_MEM | size, dst, src, off, 0); }
  void stx(int size, int dst, int src, int16_t off) { emit(BPF_STX | BPF_MEM | size, dst, src, off, 0); }
  void mov(int dst, int src) { emit(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0); }
  void mov_imm(int dst, int32_t imm) { emit(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm); }
  void add_imm(int dst, int32_t imm) { emit(BPF_ALU64 | BPF_ADD | BPF_K, dst, 0, 0, imm); }
  void and_imm(int dst, int32_t imm) { emit(BPF_ALU64 | BPF_AND | BPF_K, dst, 0, 0, imm); }
  void to_be16(int dst) { emit(BPF_ALU | BPF_END | BPF_TO_BE, dst, 0, 0, 16); }
  void load_map(int dst, int map_fd) {
    emit(BPF_LD | BPF_DW | BPF_IMM, dst, BPF_PSEUDO_MAP_FD, 0, map_fd);
    emit(0, 0, 0, 0, 0);  // second half of the 64-bit immediate
  }
  void call(int helper) { emit(BPF_JMP | BPF_CALL, 0, 0, 0, helper); }
  void exit() { emit(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }
  // Conditional jumps to the "pass" label (placed later by pass_here()).
  void pass_if_gt(int dst, int src) { jump(BPF_JMP | BPF_JGT | BPF_X, dst, src, 0); }
  void pass_if_ne(int dst, int32_t imm) { jump(BPF_JMP | BPF_JNE | BPF_K, dst, 0, imm); }
  void pass_if_ne32(int dst, int32_t imm) { jump(BPF_JMP32 | BPF_JNE | BPF_K, dst, 0, imm); }
  void pass_if_ne_reg(int dst, int src) { jump(BPF_JMP | BPF_JNE | BPF_X, dst, src, 0); }
  void pass_if_zero(int dst) { jump(BPF_JMP | BPF_JEQ | BPF_K, dst, 0, 0); }
  void pass_here() {
    for (size_t at : to_pass_) code_[at].off = static_cast<int16_t>(code_.size() - at - 1);
    to_pass_.clear();
  }
  const std::vector<bpf_insn>& code() const { return code_; }

 private:
  void emit(int op, int dst, int src, int16_t off, int32_t imm) {
    bpf_insn i{};
    i.code = static_cast<uint8_t>(op);
    i.dst_reg = static_cast<uint8_t>(dst) & 0xf;
    i.src_reg = static_cast<uint8_t>(src) & 0xf;
    i.off = off;
    i.imm = imm;
    code_.push_back(i);
  }
  void jump(int op, int dst, int src, int32_t imm) {
    to_pass_.push_back(code_.size());
    emit(op, dst, src, 0, imm);
  }
  std::vector<bpf_insn> code_;
  std::vector<size_t> to_pass_;
};

// Registers (BPF calling convention: r1-r5 arguments/scratch, r0 result, r6-r9 kept, r10 stack).
constexpr int R0 = 0, R1 = 1, R2 = 2, R3 = 3, R4 = 4, R5 = 5, R6 = 6, R10 = 10;
// struct xdp_md field offsets.
constexpr int16_t kMdData = 0, kMdDataEnd = 4, kMdRxQueue = 16;
// Ethernet + IPv4 without options + UDP.
constexpr int32_t kHeaders = 14 + 20 + 8;

// Little-endian view of network-order constants as BPF loads them from the packet.
int32_t wire16(uint16_t host) {
  uint16_t net = htons(host);
  return net;
}
int32_t wire32(in_addr_t net) {
  int32_t v;
  std::memcpy(&v, &net, sizeof v);
  return v;
}

std::vector<bpf_insn> build_program(int ports_fd, int xsks_fd, in_addr_t match_address) {
  Assembler a;
  a.mov(R6, R1);  // ctx
  a.ldx(BPF_W, R2, R1, kMdData);
  a.ldx(BPF_W, R3, R1, kMdDataEnd);
  a.mov(R4, R2);
  a.add_imm(R4, kHeaders);
  a.pass_if_gt(R4, R3);  // shorter than the headers we read
  a.ldx(BPF_H, R5, R2, 12);
  a.pass_if_ne(R5, wire16(0x0800));  // not IPv4 (VLAN tags included: the stack handles them)
  a.ldx(BPF_B, R5, R2, 14);
  a.pass_if_ne(R5, 0x45);  // IP options: the socket path
  a.ldx(BPF_B, R5, R2, 23);
  a.pass_if_ne(R5, IPPROTO_UDP);
  a.ldx(BPF_H, R5, R2, 20);
  a.and_imm(R5, wire16(0x3fff));
  a.pass_if_ne(R5, 0);  // a fragment: the stack reassembles it
  if (match_address != 0) {
    a.ldx(BPF_W, R5, R2, 30);
    a.pass_if_ne32(R5, wire32(match_address));
  }
  a.ldx(BPF_H, R5, R2, 36);  // UDP destination port
  a.to_be16(R5);              // → host order: the array index
  a.stx(BPF_W, R10, R5, -4);
  a.mov(R2, R10);
  a.add_imm(R2, -4);
  a.load_map(R1, ports_fd);
  a.call(BPF_FUNC_map_lookup_elem);
  a.pass_if_zero(R0);
  a.ldx(BPF_W, R1, R0, 0);  // owning queue + 1, 0 = not a relay port
  a.pass_if_zero(R1);
  a.ldx(BPF_W, R2, R6, kMdRxQueue);
  a.mov(R3, R2);
  a.add_imm(R3, 1);
  a.pass_if_ne_reg(R1, R3);  // arrived on another worker's queue: its socket gets it
  a.load_map(R1, xsks_fd);
  a.mov_imm(R3, XDP_PASS);  // no socket in that slot (worker gone): pass
  a.call(BPF_FUNC_redirect_map);
  a.exit();
  a.pass_here();
  a.mov_imm(R0, XDP_PASS);
  a.exit();
  return a.code();
}

unsigned count_rx_queues(const std::string& interface) {
  unsigned n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/sys/class/net/" + interface + "/queues", ec))
    if (e.path().filename().string().rfind("rx-", 0) == 0) ++n;
  return n ? n : 1;
}

int silent_libbpf(enum libbpf_print_level, const char*, va_list) { return 0; }

}  // namespace

std::string interface_of(const std::string& address) {
  in_addr want{};
  if (inet_pton(AF_INET, address.c_str(), &want) != 1 || want.s_addr == 0) return "";
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string name;
  for (ifaddrs* i = list; i && name.empty(); i = i->ifa_next)
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
        reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr == want.s_addr)
      name = i->ifa_name;
  freeifaddrs(list);
  return name;
}

std::unique_ptr<XdpProgram> XdpProgram::create(const std::string& interface, const std::string& address,
                                               XdpMode mode, std::string& error) {
  libbpf_set_print(silent_libbpf);  // failures are reported through error, once
  std::unique_ptr<XdpProgram> p(new XdpProgram());
  p->interface_ = interface;
  p->ifindex_ = if_nametoindex(interface.c_str());
  if (p->ifindex_ == 0) return error = "no interface " + interface, nullptr;
  p->queues_ = count_rx_queues(interface);

  Fd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, interface.c_str(), IFNAMSIZ - 1);
  if (sock && ioctl(sock.get(), SIOCGIFHWADDR, &ifr) == 0) std::memcpy(p->mac_.data(), ifr.ifr_hwaddr.sa_data, 6);
  if (sock && ioctl(sock.get(), SIOCGIFADDR, &ifr) == 0)
    p->interface_ip_ = reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr)->sin_addr.s_addr;

  if (sock && ioctl(sock.get(), SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_LOOPBACK)) {
    // What an AF_XDP socket sends has no route attached; on loopback the kernel's input routing
    // then drops 127.0.0.0/8 and local source addresses as martians unless these allow them.
    for (const char* key : {"route_localnet", "accept_local"}) {
      std::string path = "/proc/sys/net/ipv4/conf/" + interface + "/" + key;
      std::ifstream in(path);
      int value = 0;
      if (!(in >> value) || value == 0)
        return error = "on loopback AF_XDP needs net.ipv4.conf." + interface + "." + key +
                       "=1 (sysctl -w net.ipv4.conf." + interface + ".route_localnet=1 net.ipv4.conf." + interface +
                       ".accept_local=1): the frames it sends would be dropped as martians",
               nullptr;
    }
  }

  in_addr match{};
  if (inet_pton(AF_INET, address.c_str(), &match) != 1) return error = "bad address " + address, nullptr;
  if (!p->load(match.s_addr, error)) return nullptr;

  // Native (driver) mode where the driver has it, else generic (skb) mode, which every
  // interface has, loopback included.
  for (XdpMode m : {XdpMode::native, XdpMode::skb}) {
    if (mode != XdpMode::automatic && mode != m) continue;
    LIBBPF_OPTS(bpf_link_create_opts, opts);
    opts.flags = m == XdpMode::native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
    int link = bpf_link_create(p->prog_.get(), static_cast<int>(p->ifindex_), BPF_XDP, &opts);
    if (link >= 0) {
      p->link_ = Fd(link);
      p->native_ = m == XdpMode::native;
      return p;
    }
    error = std::string("attaching the XDP program to ") + interface + " (" +
            (m == XdpMode::native ? "native" : "skb") + " mode): " + strerror(-link) +
            (link == -EBUSY ? " (another XDP program is attached)" : "");
  }
  return nullptr;
}

bool XdpProgram::load(in_addr_t match_address, std::string& error) {
  int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "relais_ports", sizeof(uint32_t), sizeof(uint32_t), 65536, nullptr);
  if (fd < 0) return error = std::string("bpf map (ports): ") + strerror(-fd), false;
  ports_map_ = Fd(fd);
  fd = bpf_map_create(BPF_MAP_TYPE_XSKMAP, "relais_xsks", sizeof(uint32_t), sizeof(uint32_t), queues_, nullptr);
  if (fd < 0) return error = std::string("bpf map (xsks): ") + strerror(-fd), false;
  xsks_map_ = Fd(fd);

  std::vector<bpf_insn> code = build_program(ports_map_.get(), xsks_map_.get(), match_address);
  std::vector<char> log(16384);
  LIBBPF_OPTS(bpf_prog_load_opts, opts);
  opts.log_buf = log.data();
  opts.log_size = static_cast<uint32_t>(log.size());
  opts.log_level = 1;
  fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "relais_xdp", "Dual MIT/GPL", code.data(), code.size(), &opts);
  if (fd < 0) {
    // Retry without the verifier log (a full log buffer is an error of its own).
    opts.log_buf = nullptr;
    opts.log_size = 0;
    opts.log_level = 0;
    fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "relais_xdp", "Dual MIT/GPL", code.data(), code.size(), &opts);
  }
  if (fd < 0) {
    error = std::string("loading the XDP program: ") + strerror(-fd);
    if (log[0]) error += std::string(" (verifier: ") + log.data() + ")";
    return false;
  }
  prog_ = Fd(fd);
  return true;
}

XdpProgram::~XdpProgram() = default;  // the link goes first (members in reverse), detaching the program

bool XdpProgram::add_socket(unsigned queue, int xsk_fd) {
  uint32_t key = queue;
  uint32_t value = static_cast<uint32_t>(xsk_fd);
  return bpf_map_update_elem(xsks_map_.get(), &key, &value, BPF_ANY) == 0;
}

void XdpProgram::remove_socket(unsigned queue) {
  uint32_t key = queue;
  bpf_map_delete_elem(xsks_map_.get(), &key);
}

bool XdpProgram::claim_port(uint16_t port, unsigned queue) {
  uint32_t key = port, value = queue + 1;
  return bpf_map_update_elem(ports_map_.get(), &key, &value, BPF_ANY) == 0;
}

void XdpProgram::release_port(uint16_t port) {
  uint32_t key = port, value = 0;
  bpf_map_update_elem(ports_map_.get(), &key, &value, BPF_ANY);
}

}  // namespace relais::media
