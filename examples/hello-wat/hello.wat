;; The cheapest wasi:http/incoming-handler guest we can write: every request gets
;; 200 and the body "hello\n". No language runtime, so a request costs the host's
;; own work plus eight calls across the component boundary. Written against the
;; canonical ABI of wasi:http@0.2.12 (the import names are the "legacy" mangling that
;; `wasm-tools component embed` and `component new` read). build.sh turns it into
;; build/hello-wat.wasm.
(module
  (import "wasi:http/types@0.2.12" "[constructor]fields"
    (func $fields_new (result i32)))
  (import "wasi:http/types@0.2.12" "[constructor]outgoing-response"
    (func $response_new (param i32) (result i32)))
  ;; result<own<outgoing-body>>: written at the pointer (tag byte, handle at +4)
  (import "wasi:http/types@0.2.12" "[method]outgoing-response.body"
    (func $response_body (param i32 i32)))
  ;; result<own<output-stream>>: the same layout
  (import "wasi:http/types@0.2.12" "[method]outgoing-body.write"
    (func $body_write (param i32 i32)))
  ;; (body, option<trailers> tag, trailers, result pointer)
  (import "wasi:http/types@0.2.12" "[static]outgoing-body.finish"
    (func $body_finish (param i32 i32 i32 i32)))
  ;; (outparam, result tag, then the flattened result<outgoing-response, error-code>)
  (import "wasi:http/types@0.2.12" "[static]response-outparam.set"
    (func $outparam_set (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]incoming-request"
    (func $drop_request (param i32)))
  ;; (stream, bytes pointer, bytes length, result pointer)
  (import "wasi:io/streams@0.2.12" "[method]output-stream.blocking-write-and-flush"
    (func $write_and_flush (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.12" "[resource-drop]output-stream"
    (func $drop_stream (param i32)))

  (memory (export "memory") 1)
  (data (i32.const 16) "hello\n")
  (global $body_ptr i32 (i32.const 16))
  (global $body_len i32 (i32.const 6))
  ;; 64 bytes the host writes results into (error-code is the largest, 40 bytes)
  (global $ret i32 (i32.const 64))
  ;; The host only allocates for an error it returns (a string inside error-code),
  ;; which never happens on this path; a bump allocator that never frees is enough.
  (global $heap (mut i32) (i32.const 1024))

  (func (export "cabi_realloc")
    (param $old i32) (param $old_size i32) (param $align i32) (param $size i32)
    (result i32)
    (local $ptr i32)
    ;; align the heap pointer up
    (local.set $ptr
      (i32.and
        (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get $align))))
    (global.set $heap (i32.add (local.get $ptr) (local.get $size)))
    ;; grow by whole pages while the heap is past the end of memory
    (block $enough
      (loop $grow
        (br_if $enough
          (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1))
          (then unreachable))
        (br $grow)))
    (if (local.get $old_size)
      (then (memory.copy (local.get $ptr) (local.get $old) (local.get $old_size))))
    (local.get $ptr))

  ;; A result at $ret must be ok (tag 0), else the guest traps.
  (func $expect_ok
    (if (i32.load8_u (global.get $ret)) (then unreachable)))

  (func (export "wasi:http/incoming-handler@0.2.12#handle")
    (param $request i32) (param $outparam i32)
    (local $response i32) (local $body i32) (local $stream i32)
    (call $drop_request (local.get $request))
    ;; a response with no headers (status 200 by default)
    (local.set $response (call $response_new (call $fields_new)))
    (call $response_body (local.get $response) (global.get $ret))
    (call $expect_ok)
    (local.set $body (i32.load offset=4 (global.get $ret)))
    ;; hand the response over: ok(response)
    (call $outparam_set (local.get $outparam)
      (i32.const 0) (local.get $response)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    ;; write the body through its stream, then finish it with no trailers
    (call $body_write (local.get $body) (global.get $ret))
    (call $expect_ok)
    (local.set $stream (i32.load offset=4 (global.get $ret)))
    (call $write_and_flush
      (local.get $stream) (global.get $body_ptr) (global.get $body_len) (global.get $ret))
    (call $expect_ok)
    (call $drop_stream (local.get $stream))
    (call $body_finish (local.get $body) (i32.const 0) (i32.const 0) (global.get $ret))
    (call $expect_ok))
)
