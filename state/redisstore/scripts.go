package redisstore

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts of the store, one per step that must be atomic across
// daemons. Each file says its KEYS, ARGV and answer.
var (
	//go:embed lua/hit.lua
	hitLua string
	//go:embed lua/release.lua
	releaseLua string
	//go:embed lua/push.lua
	pushLua string
	//go:embed lua/sweep.lua
	sweepLua string
)

var (
	// hitScript counts one hit and checks the limit and the block (Hit).
	hitScript = redis.NewScript(hitLua)
	// releaseScript lifts one block and clears its window (Release).
	releaseScript = redis.NewScript(releaseLua)
	// pushScript puts a block made elsewhere (Push).
	pushScript = redis.NewScript(pushLua)
	// sweepScript drops the index entries of what expired (Sweep).
	sweepScript = redis.NewScript(sweepLua)
)
