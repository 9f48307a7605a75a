# failure.pl SERVERS: how do_task reports jobs that fail: on_fail,
# retry_count with on_retry, and the task timeout.
use strict;
use warnings;
use GearflowTest;
use Gearman::Client;
use Time::HiRes qw(time);

$| = 1;
my $client = Gearman::Client->new(job_servers => [split /,/, $ARGV[0]]);
# Keys for the worker's flaky function, new on each run.
my $run = "$$." . int(time * 1000);

sub on_fail {
    my $name = shift;
    return sub { print "$name on_fail: $_[0]\n" };
}

show(fail => $client->do_task(fail => "x", { on_fail => on_fail("fail") }));

# The worker fails the first two calls, so two retries succeed...
my @retries;
my $r = $client->do_task(flaky => "$run-a:2", {
    retry_count => 2,
    on_retry    => sub { push @retries, $_[0] },
    on_fail     => on_fail("retried"),
});
print "retried: ", (defined $r ? ($$r =~ s/^ok \S+/ok/r) : "undef"), "; on_retry: @retries\n";

# ...and one retry is not enough for three failures.
@retries = ();
show(exhausted => $client->do_task(flaky => "$run-b:3", {
    retry_count => 1,
    on_retry    => sub { push @retries, $_[0] },
    on_fail     => on_fail("exhausted"),
}));
print "exhausted on_retry: @retries\n";

# The task's timeout ends do_task before the 2 s job does.
my $start = time;
show(timeout => $client->do_task(sleep => "2",
    { timeout => 0.5, on_fail => on_fail("timeout") }));
printf "timeout returned within 1.5s: %s\n", (time - $start < 1.5 ? "yes" : "no");

# The job that timed out did not break the worker or the server.
show(after => $client->do_task(upper => "after"));
