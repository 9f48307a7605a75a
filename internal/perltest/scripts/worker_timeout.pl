# worker_timeout.pl SERVERS: jobs of the worker's slow function, which
# it registered with a timeout of 1 second. Gearman::Server, for which
# the library is written, fails a job still running after its timeout
# (WORK_FAIL to its clients) and takes the worker's late result without
# complaint, so the worker goes on serving.
use strict;
use warnings;
use GearflowTest;
use Gearman::Client;
use Time::HiRes qw(time);

$| = 1;
my $client = Gearman::Client->new(job_servers => [split /,/, $ARGV[0]]);

show(quick => $client->do_task(slow => "0.2", { timeout => 10 }));
my $start = time;
show(slow => $client->do_task(slow => "2.5",
    { timeout => 3, on_fail => sub { print "slow on_fail: $_[0]\n" } }));
printf "slow ended before 2.5s: %s\n", (time - $start < 2.5 ? "yes" : "no");
show(after => $client->do_task(upper => "after",
    { timeout => 4, on_fail => sub { print "after on_fail: $_[0]\n" } }));
