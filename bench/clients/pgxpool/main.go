// pgx v4's pgxpool: does a new connection read sslrootcert again?
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v4/pgxpool"
)

func main() {
	ctx := context.Background()
	dsn := fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres sslmode=verify-full sslrootcert=%s",
		os.Args[1], os.Args[2], os.Args[3])
	pool, err := pgxpool.Connect(ctx, dsn)
	if err != nil {
		fmt.Println("fail", err)
		return
	}
	in := bufio.NewReader(os.Stdin)
	for i := 0; i < 2; i++ {
		a, errA := pool.Acquire(ctx)
		b, errB := pool.Acquire(ctx) // a second one: a new connection
		switch {
		case errA != nil:
			fmt.Println("fail", errA)
		case errB != nil:
			fmt.Println("fail", errB)
		default:
			fmt.Println("ok")
		}
		if a != nil {
			a.Conn().Close(ctx)
			a.Release()
		}
		if b != nil {
			b.Conn().Close(ctx)
			b.Release()
		}
		in.ReadString('\n')
	}
}
