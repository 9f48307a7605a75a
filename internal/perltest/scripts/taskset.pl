# taskset.pl SERVERS N RELEASE: N tasks in one Gearman::Taskset, run in
# parallel; then two tasks with the same uniq, submitted while the first
# is held by the worker, which the server merges into one job that must
# complete both tasks.
use strict;
use warnings;
use GearflowTest;
use Gearman::Client;

$| = 1;
my ($servers, $n, $release) = @ARGV;

my $client = Gearman::Client->new(job_servers => [job_servers($servers)]);

my (%got, @failed);
my $set = $client->new_task_set;
for my $i (1 .. $n) {
    $set->add_task(upper => "task $i", {
        on_complete => sub { $got{$i} = ${ $_[0] } },
        on_fail     => sub { push @failed, "$i: $_[0]" },
    });
}
$set->wait(timeout => 30);
my @wrong = grep { ($got{$_} // "") ne "TASK $_" } 1 .. $n;
print "tasks: ", $n - @wrong, " of $n right; failed: @failed; wrong: @wrong\n";

my @done;
$set = $client->new_task_set;
my @handles = map {
    my $i = $_;
    $set->add_task(hold => $release, {
        uniq        => "same",
        on_complete => sub { push @done, "$i:${ $_[0] }" },
        on_fail     => sub { push @done, "$i:failed" },
    });
} 1 .. 2;
print "same uniq, same handle: ", ($handles[0] eq $handles[1] ? "yes" : "no"), "\n";
open my $f, '>', $release or die "$release: $!\n";
close $f;
$set->wait(timeout => 20);
print "same uniq: ", join(" ", sort @done), "\n";
